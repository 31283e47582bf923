"""Stand-in for Rithum (ChannelAdvisor): the REST API v1, OAuth, `$batch`, orders and an FTP feed intake.

Start it with `python -m services.sandbox.rithum --port N --ftp-port M`; see docs/rithum.md.
"""
