"""The hook client (stdlib only) and its in-process fallback."""
