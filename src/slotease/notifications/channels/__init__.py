"""Delivery channels and the providers behind them."""
