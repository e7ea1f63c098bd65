"""Developer tools (generators, evaluation, fitting scripts). Not shipped in Lambda assets."""
