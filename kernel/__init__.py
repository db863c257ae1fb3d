"""The kernel every room imports: settings, database base types and clock, sessions, locks, live
updates, rate limits, log scrubbing, the background loop and the web middlewares. It imports no
room but bots.base (clean text); the composition root (allervers/) builds the app from it."""
