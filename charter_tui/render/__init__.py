"""Pure text rendering (numbers, sparklines, plots, DAGs, diffs, prompts) into Rich `Text`.

Nothing here imports Textual widgets: these functions are unit-testable on their own, and
the widgets only place their output on screen.
"""
