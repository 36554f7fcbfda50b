"""sentence_pair: the example task of docs/adding_a_task.md (is the second sentence a paraphrase of the first?)."""
