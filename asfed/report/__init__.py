"""`asfed report`: one self-contained HTML page from sweep folders, run folders and folders of
runs (see `asfed.report.page`), and the README's results section (`asfed.report.results`)."""
