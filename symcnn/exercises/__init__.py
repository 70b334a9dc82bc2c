"""Exercise batches: variants, questions, sheets and grading."""
