"""Neural-network building blocks: normalisation, rotary embeddings, attention, MLPs, decoder."""
