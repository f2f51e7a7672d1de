"""Which transformers model class an adapter applies to.

PEFT records the task in ``adapter_config.json``'s ``task_type`` (``peft.utils.TaskType``); each
maps to the transformers Auto class that loads a base model for it (PEFT's
``MODEL_TYPE_TO_PEFT_MODEL_MAPPING`` pairs the same task types with its ``PeftModelFor*`` classes).
"""

from __future__ import annotations

# PEFT task types -> the transformers Auto class that loads a base model for them.
AUTO_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoModel",
}

__all__ = ["AUTO_CLASSES"]
