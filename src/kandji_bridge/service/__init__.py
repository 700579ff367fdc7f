"""The long-running service behind `serve`: its shared runtime, scheduler and metrics."""
