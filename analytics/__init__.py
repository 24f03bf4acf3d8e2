"""Reading the bot's own conversations: the report, the inbox of misunderstood messages, and a traffic simulator."""


class UsageProblem(Exception):
    """Bad input the user can fix (no tracker store, an unreadable file, an empty period, ...): one clear line."""
