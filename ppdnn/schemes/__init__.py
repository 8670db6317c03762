"""One module per encryption scheme, named after the scheme (see ``ppdnn.ciphers.base``)."""
