"""The Discord layer's own parts: the client subclass, the sink that shows jobs in Discord, the
wording and embeds, the access gate and the capped attachment reader. It depends on the core
(`bot`); the core never imports it. Commands live beside it in `cogs/`, one Cog per feature."""
