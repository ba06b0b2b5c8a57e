"""derain-serve: the deraining model behind an HTTP endpoint on Ray Serve (see :mod:`.app`)."""
