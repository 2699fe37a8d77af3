"""The built-in plugins: ordinary plugins, registered by direct import through the same hooks a third party uses."""
