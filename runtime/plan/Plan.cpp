// Placeholder: replaced by the runtime plan reader/writer.
#include "runtime/plan/Plan.h"
