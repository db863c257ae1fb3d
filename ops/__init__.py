"""Operations: what an orchestrator and an operator need from a process (probes, graceful
shutdown, production checks, metrics, JSON logs). Nothing here changes what people or workers see."""
