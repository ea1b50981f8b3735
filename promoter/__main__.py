from promoter.cli import app

app(prog_name="promote")
