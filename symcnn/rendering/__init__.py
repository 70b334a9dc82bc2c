"""Documents to text: the printers and one module per output format."""
