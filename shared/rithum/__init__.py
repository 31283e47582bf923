"""Client for Rithum (ChannelAdvisor): REST API v1 with OAuth, paging, `$batch`, and FTP inventory feeds."""
