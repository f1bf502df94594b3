"""Continual-learning strategies: what data a stage sees and what it carries over."""
