"""Configuration: config.toml → validated, typed settings; one-line errors naming the key."""
