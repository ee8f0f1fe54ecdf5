"""Server-side email: the incoming and outgoing channels (DOMAIN.md "Email tracking").

``transport`` is the seam to the mail servers (EWS, POP3, IMAP, SMTP); the rest is the
portal's own: parsing, tracking rules, correlation, queues, forward mailboxes, sending once.
"""
