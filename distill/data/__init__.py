"""Small built-in data sets (`distill data ...`)."""
