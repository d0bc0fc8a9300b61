"""SWIM + Lifeguard membership as a pure state machine."""
