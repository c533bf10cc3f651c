"""The daemon's composition: configuration, the processing loop, the control socket, systemd notification."""
