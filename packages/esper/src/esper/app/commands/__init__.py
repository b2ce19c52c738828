"""One module per ``esper`` subcommand."""
