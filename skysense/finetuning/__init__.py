"""Fine-tuning task models (segmentation, scene classification) on a pre-trained encoder.

``skysense finetune`` trains a :class:`skysense.models.task_model.TaskModel` through the
pre-training DeepSpeed engine (:mod:`skysense.training`), scores it on held-out places against
the frozen-encoder probe and the same fine-tuning from a random-init encoder, and exports it.
"""
