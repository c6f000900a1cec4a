"""A fake Discord for end-to-end tests of the bot with the real discord.py client.

The `fake_discord` fixture (tests/fakediscord/fixture.py) starts it and points discord.py at it;
`running(client, fake)` runs a bot against it until the block ends:

    async def test_video(fake_discord: FakeDiscord) -> None:
        guild = fake_discord.add_guild()
        channel = fake_discord.add_text_channel(guild, "general")
        alice = fake_discord.add_user("alice")
        fake_discord.add_member(guild, alice)
        async with running(make_bot(), fake_discord):
            i = await fake_discord.dispatch_slash(
                "video", {"prompt": "a cat"}, user=alice, channel=channel
            )
            await fake_discord.wait_for(lambda: i.original and i.original.attachments)
"""

from tests.fakediscord.rest import FailureRule, RateLimitRule, RequestRecord, UploadedFile
from tests.fakediscord.server import FakeDiscord
from tests.fakediscord.snowflake import FakeClock, snowflake_time
from tests.fakediscord.state import (
    DEFAULT_UPLOAD_LIMIT,
    Attachment,
    Channel,
    Command,
    FakeDiscordError,
    Guild,
    Interaction,
    Member,
    Message,
    Role,
    Upload,
    User,
)

__all__ = [
    "DEFAULT_UPLOAD_LIMIT",
    "Attachment",
    "Channel",
    "Command",
    "FailureRule",
    "FakeClock",
    "FakeDiscord",
    "FakeDiscordError",
    "Guild",
    "Interaction",
    "Member",
    "Message",
    "RateLimitRule",
    "RequestRecord",
    "Role",
    "Upload",
    "UploadedFile",
    "User",
    "snowflake_time",
]
