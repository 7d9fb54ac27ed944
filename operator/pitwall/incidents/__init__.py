"""Incidents: opened and closed from what the status page sees, edited by people, told to consumers.

``decide`` (pure) turns each public product's version verdicts (the status page's, so the page
and the incident never disagree) and the existing Incidents into actions; ``notify`` (pure)
says which notices an incident owes and to whom; ``messages`` (pure) writes them in consumer
language; ``reconcile`` does the API writes and the deliveries.
"""
