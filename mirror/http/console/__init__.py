"""The review console: server-rendered pages for the people who approve crates, under /-/.

auth.py    admin tokens, signed HttpOnly/SameSite=Strict session cookies, CSRF, same origin
render.py  the Jinja environment (autoescape everywhere) and the security headers
pages.py   the handlers: pending reviews, a review, decisions, an event, near names, status,
           a lockfile's review; approve and deny (POST only)
routes.py  wiring under /-/, the packaged templates/ and static/ (no CDN: works air-gapped)
"""
