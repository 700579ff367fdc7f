"""kandji-bridge: Kandji audit logs into a security data lake, devices into an asset inventory."""

__version__ = "0.1.0"
