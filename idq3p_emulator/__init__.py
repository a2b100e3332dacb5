"""idq3p_emulator."""
