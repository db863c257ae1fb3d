"""The admin console (/admin): an organisation runs its service from the browser.

Routes live in one module per room (flows, people, directory, settings, audit); access.py holds the
one way an admin route checks who is asking. Nothing here imports the composition root's app module.
"""
