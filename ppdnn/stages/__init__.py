"""Pipeline stages as plain functions (``stage(inputs, outputs, settings) -> result``) with thin command lines."""
