"""Complete models: an LM with its codec and conditioners, trainable and generating."""
