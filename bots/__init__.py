"""Channel adapters: translate platform HTTP to and from InboundMessage / OutboundMessage. No database."""
