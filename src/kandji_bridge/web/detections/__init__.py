"""Detections, Alerts: the rules, their switches and runs, and the alerts they raised."""
