"""Programs: the op table, the program model, its text and byte forms, generation and mutation."""
