"""Configuration files: YAML read with locations, checked into typed models."""
