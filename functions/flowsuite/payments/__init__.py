"""Payments: Stripe PaymentIntents for orders, a verified webhook, refunds."""
