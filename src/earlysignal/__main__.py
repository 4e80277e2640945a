"""`python -m earlysignal` runs the same CLI as the `earlysignal` command."""

from earlysignal.cli import app

app(prog_name="earlysignal")
