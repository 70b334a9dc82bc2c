"""Documents to text: the printers and one module per output format."""

FORMATS = ("markdown", "latex", "beamer", "snippets", "html", "pdf")  # what `symcnn render` writes
