"""Reports: the reproduction of the paper's comparison, figures and Markdown."""
