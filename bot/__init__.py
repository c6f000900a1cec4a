"""discord-video-bot: a self-hosted Discord bot that turns /video into a generated video."""

__version__ = "0.1.0"
