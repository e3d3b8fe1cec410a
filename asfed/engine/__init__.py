"""The round loop: the world rolls out episodes, agents share and update through the relay."""
