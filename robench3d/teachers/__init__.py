"""Teachers: frozen models a distillation defense learns from (see :mod:`robench3d.teachers.base`)."""
