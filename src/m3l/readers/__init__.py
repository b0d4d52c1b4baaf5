"""Reading extracted features back: matrices and listings, the audit, the HTML report, MMRec export."""
