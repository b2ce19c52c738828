"""The release tools' shared code: the workspace's members, their APIs, changelogs and compatibility sets."""
