"""One module per screen. Each view screen reads `app.state` in `refresh_view`, never the bus."""
