"""Local directory: communes, data·inclusion places, nearest search, opening hours, emergency numbers.

Importing this package is cheap; the heavy parts (numpy, rapidfuzz, the database) load in the
modules that need them.
"""
