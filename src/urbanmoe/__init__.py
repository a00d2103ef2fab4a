"""UrbanMoE."""
