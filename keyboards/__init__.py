"""Inline keyboards and card texts: CallbackData classes (ids and short action codes only, under 64 bytes)
and the builders next to them, one module per audience."""
