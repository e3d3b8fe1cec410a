"""`asfed report`: one self-contained HTML page from sweep folders, run folders and folders of
runs (see `asfed.report.page`), and the results page's generated section
(`asfed.report.results`)."""
